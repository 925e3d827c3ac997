#!/usr/bin/env node
// The same core for other CI systems and laptops: flags mirror the action's inputs, the token comes from the
// environment, logs go to stderr and the outputs to stdout as name=value lines. Exit 0 ok, 1 failed, 2 bad usage.
import { parseArgs } from 'node:util';
import { removeRunDockerConfig } from './docker-config.js';
import { InputError, readConfig } from './inputs.js';
import type { Annotation, Logger } from './logger.js';
import { ActionFailure, runAction } from './run.js';
import { realDeps, resultOutputs } from './wiring.js';

const STRING_INPUTS = [
  'app-slug',
  'image',
  'target-image',
  'tag',
  'token-type',
  'username',
  'registry',
  'repository',
  'proxy-domain',
  'mode',
  'retries',
  'retry-delay',
  'max-layer-size',
  'layer-split',
  'attestations',
] as const;

const USAGE = `Usage: replicated-push --app-slug SLUG --image IMAGE [--tag TAG ...] [options]

Pushes a local image to the Replicated registry (or another registry) with retries, the 524 layer advisory,
attestation stripping and a registry-side check of every tag. The token is read from $REPLICATED_TOKEN
(or the variable --token-env names), never from a flag.

Options (the GitHub Action's inputs):
  --app-slug SLUG          Vendor Portal application slug (required)
  --image IMAGE            local image: name, name:tag, registry/path/name:tag, name@sha256:..., or an ID
  --target-image NAME      repository under the app (default: last path component of --image)
  --tag TAG                tag to push; repeat or separate with commas (required: no default outside a tag ref)
  --token-type TYPE        service-account (default), user, password, team
  --username NAME          the Vendor Portal email for user/password tokens
  --registry HOST          default registry.replicated.com
  --repository PATH        path on an external registry (default APP_SLUG/TARGET)
  --proxy-domain HOST      default proxy.replicated.com
  --mode MODE              push (default) or tombstone
  --dry-run                validate, log in, print the plan; push nothing
  --retries N              extra attempts after the first (default 2)
  --retry-delay D          first backoff: 500ms, 10s, 2m (default 10s)
  --max-layer-size SIZE    default 1GB
  --layer-split MODE       advise (default), auto, off
  --attestations MODE      strip (default), keep
  --token-env NAME         environment variable holding the token (default REPLICATED_TOKEN)
  -h, --help               this text

Exit status: 0 pushed (or dry run passed), 1 the push failed, 2 bad usage or an invalid input.`;

class UsageError extends Error {}

function parse(argv: string[]): { get: (name: string) => string; tokenEnv: string; help: boolean } {
  if (argv.some((a) => a === '--token' || a.startsWith('--token='))) {
    throw new UsageError(
      'the token is never a flag (flags end up in shell history and process lists): put it in $REPLICATED_TOKEN, or name another variable with --token-env',
    );
  }
  const options = Object.fromEntries(STRING_INPUTS.map((n) => [n, { type: 'string' as const, multiple: n === 'tag' }]));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...options,
        'dry-run': { type: 'boolean' },
        'token-env': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  const tokenEnv = (values['token-env'] as string | undefined) ?? 'REPLICATED_TOKEN';
  const get = (name: string): string => {
    if (name === 'token') return process.env[tokenEnv] ?? '';
    if (name === 'dry-run') return values['dry-run'] ? 'true' : '';
    const v = values[name];
    return Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : '';
  };
  return { get, tokenEnv, help: values.help === true };
}

function terminalLogger(): Logger {
  const tty = process.stderr.isTTY === true;
  let redraw = false;
  const write = (line: string) => {
    if (redraw) process.stderr.write('\r\x1b[2K');
    redraw = false;
    process.stderr.write(`${line}\n`);
  };
  const annotate = (kind: string) => (a: Annotation) => write(`${kind}: ${a.title}: ${a.message}`);
  return {
    info: write,
    progress: (line) => {
      if (!tty) return write(line);
      process.stderr.write(`\r\x1b[2K${line}`);
      redraw = true;
    },
    debug: (line) => {
      if (process.env.RUNNER_DEBUG === '1' || process.env.DEBUG) write(`debug: ${line}`);
    },
    notice: annotate('notice'),
    warning: annotate('warning'),
    group: async (name, fn) => {
      write(`== ${name}`);
      return fn();
    },
  };
}

export async function cli(argv: string[]): Promise<number> {
  let args;
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const log = terminalLogger();
  let configDir = '';
  const interrupted = () => {
    // The core's own cleanup does not run when the process is interrupted: remove the credentials here.
    removeRunDockerConfig(configDir);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    if (!args.get('token'))
      throw new InputError('token', `No token: set $${args.tokenEnv} (the token is never a flag).`);
    const config = readConfig(args.get, { ref: process.env.GITHUB_REF ?? '' });
    const result = await runAction(
      config,
      realDeps(log, process.stderr.isTTY ? 1000 : 15_000, (dir) => {
        configDir = dir;
      }),
    );
    for (const [name, value] of Object.entries(resultOutputs(result)))
      process.stdout.write(`${name}=${value.replace(/\n/g, ',')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 2;
    }
    const title = e instanceof ActionFailure ? e.title : 'replicated-push failed';
    process.stderr.write(`error: ${title}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
  }
}

process.exitCode = await cli(process.argv.slice(2));
