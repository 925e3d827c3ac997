// How the credentials reach a token realm (pure; registry-client.ts sends it): a username and password as Basic on
// a GET; an identity token (docker's `identitytoken`, a helper's `<token>` user) as an OAuth2 refresh token POSTed
// in a form, as docker does, the realm's query (service, scope) in the form; nothing when anonymous.
export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** An identity token (docker's `identitytoken`, a helper's `<token>` user): a refresh token for the token realm. */
  readonly identityToken?: string;
}

export interface TokenRequest {
  readonly url: URL;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

/** `Basic base64(user:password)`, or '' when there is nothing to send (anonymous, or an identity token alone). */
export function basicAuthorization(creds: Credentials | null): string {
  if (!creds || (creds.identityToken && !creds.username)) return '';
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

/** The token request for a realm URL that already carries service and scope. */
export function tokenRequest(url: URL, creds: Credentials | null): TokenRequest {
  if (creds?.identityToken) {
    const form = new URLSearchParams(url.searchParams);
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', creds.identityToken);
    form.set('client_id', 'replicated-push');
    const post = new URL(url);
    post.search = '';
    const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
    return { url: post, method: 'POST', headers, body: Buffer.from(form.toString()) };
  }
  const basic = basicAuthorization(creds);
  return { url, method: 'GET', headers: basic ? { Authorization: basic } : {} };
}
