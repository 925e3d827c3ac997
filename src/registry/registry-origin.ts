// Where the push's credentials and bytes may go, decided from URLs alone (pure; registry-client.ts applies it):
//
// - A token realm gets the Basic credentials only over https, or over plain http to the registry's own origin
//   (scheme, host and port) when that registry is itself on loopback (a test registry on this machine). Another port
//   or another loopback address is another service: on a shared runner, anyone's; and a remote registry naming an
//   http realm, even on its own host, would send the credentials in clear text across the network.
// - A request of the upload (a Location the registry gave) carries the Authorization only to the registry's own
//   origin. Another origin over https (blob storage behind a registry, with a signed URL) is sent the request
//   without any; plain http is refused when the registry is https (a downgrade: the layer's bytes in clear text),
//   and to any host but loopback from a loopback registry.
// - No redirect is followed anywhere (httpRequest does not): a 3xx is an answer like any other.
import { isLoopbackRegistry } from '../image/reference.js';

/** Why the credentials may not go to this realm; null when they may. */
export function realmRefusal(registry: URL, realm: URL): string | null {
  if (realm.protocol === 'https:') return null;
  if (realm.protocol !== 'http:') return `its scheme ${realm.protocol.slice(0, -1)} is not https`;
  if (!isLoopbackRegistry(registry.host)) return `it is plain http and the registry is not on loopback`;
  if (realm.origin !== registry.origin) return `it is plain http to another origin than the registry's`;
  return null;
}

export type LocationRule =
  /** The registry's own origin: sent with the Authorization of its scope. */
  | { readonly kind: 'registry' }
  /** Another origin the bytes may go to: sent without any Authorization. */
  | { readonly kind: 'elsewhere' }
  | { readonly kind: 'refused'; readonly why: string };

/** What a request to `target` may carry, for a registry at `registry` (its origin, http only on loopback). */
export function locationRule(registry: URL, target: URL): LocationRule {
  if (target.origin === registry.origin) return { kind: 'registry' };
  if (target.protocol === 'https:') return { kind: 'elsewhere' };
  if (target.protocol !== 'http:')
    return { kind: 'refused', why: `its scheme ${target.protocol.slice(0, -1)} is not https` };
  if (registry.protocol === 'https:') return { kind: 'refused', why: 'it is plain http, the registry https' };
  if (!isLoopbackRegistry(target.host)) return { kind: 'refused', why: 'it is plain http to a host not on loopback' };
  return { kind: 'elsewhere' };
}
