// The action's own uploader: blobs in resumable chunks and the manifest, through a RegistryTransport.
export { uploadBlob, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_TRIES } from './blob.js';
export type { BlobProgress, BlobUploadResult, UploadBlobOptions, UploadEvent } from './blob.js';
export { uploadImage, manifestMediaType, DEFAULT_CONCURRENCY } from './image.js';
export type { ManifestBlobs, ImageUploadResult, UploadImageOptions } from './image.js';
export { UploadError, type UploadPhase } from './errors.js';
export { bufferBlobSource, fileBlobSource, sha256Digest, type BlobSource } from '../image/blob-source.js';
export type { RegistryTransport, TransportRequest, TransportResponse } from './transport.js';
export * as protocol from './protocol.js';
