// `docker save` output from either store, and buildx `type=docker,dest=` (`docker-archive:FILE[:NAME]`), opened as
// the image model without extracting it (the tar indexed from its headers: tar-file.ts). Which entries are the
// image is saved-image.ts's, as for the engine's own save (upload/image-source.ts):
// - index.json whose image has compressed layers (containerd store, Docker 25+; buildx's docker exporter): the
//   image as the layout holds it, an index when it has several platforms, every blob a byte range, pushed as is;
// - otherwise (classic store, manifest.json, layers as plain tars): the layers gzipped into the work directory and
//   a Docker v2 schema 2 manifest made for them (docker-archive-classic.ts).
// NAME picks the image by its RepoTags (containerd's name annotation in index.json) when the archive holds several.
import type { OpenedImage, OpenSourceOptions, SourceImage } from '../image-model.js';
import { hasCompressedLayers } from '../oci-layout.js';
import type { Descriptor } from '../oci.js';
import {
  classicImage,
  entryNamed,
  layoutEntries,
  pickLayoutEntry,
  resolveLayoutImage,
  type LayoutImage,
  type ReadDoc,
} from '../saved-image.js';
import { classicManifestImage } from './docker-archive-classic.js';
import { documentReader, layoutSourceImage, type FindFile } from './layout-image.js';
import { openTarFile, tarFiles } from './tar-file.js';

/** Whether every manifest of the image names only compressed layers (an image of no layer counts as one). */
function pushableAsIs(image: LayoutImage): boolean {
  const manifests = image.kind === 'manifest' ? [image.manifest] : image.manifests;
  return manifests.every((m) => m.doc.layers.length === 0 || hasCompressedLayers(m.doc));
}

/** The index.json entry NAME names (the only one when null); null when none does and manifest.json may answer. */
function layoutEntry(read: ReadDoc, name: string | null): Descriptor | null {
  const entries = layoutEntries(read);
  try {
    return pickLayoutEntry(entries, name, name === null ? undefined : entryNamed(name));
  } catch (e) {
    if (read('manifest.json')) return null;
    throw e;
  }
}

async function archiveImage(find: FindFile, name: string | null, opts: OpenSourceOptions): Promise<SourceImage> {
  const read = documentReader(find);
  const entry = read('index.json') ? layoutEntry(read, name) : null;
  const layout = entry && resolveLayoutImage(read, entry);
  const hasList = !!read('manifest.json');
  // Docker 25+'s classic store writes index.json too, over plain-tar layers: manifest.json then says it all.
  if (layout && (pushableAsIs(layout) || !hasList)) return layoutSourceImage(find, layout);
  if (!hasList) throw new Error('it has neither manifest.json nor index.json (not a docker archive)');
  return classicManifestImage(find, classicImage(read, name), opts.workDir, opts.signal);
}

export async function openDockerArchive(
  file: string,
  name: string | null,
  opts: OpenSourceOptions,
): Promise<OpenedImage> {
  const label = `docker-archive:${file}${name ? `:${name}` : ''}`;
  try {
    const find = tarFiles(file, await openTarFile(file, 'a docker archive'));
    const image = await archiveImage(find, name, opts);
    return { image, name: label, close: async () => undefined };
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new Error(`${label}: ${(e as Error).message}`, { cause: e });
  }
}
