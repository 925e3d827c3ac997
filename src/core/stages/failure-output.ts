// The text a failed docker call printed, for classifyFailure: the whole output of a DockerError, else the message.
import { DockerError } from '../../engine/docker.js';

export function failureOutput(e: unknown): string {
  return e instanceof DockerError ? e.output : String((e as Error)?.message ?? e);
}
