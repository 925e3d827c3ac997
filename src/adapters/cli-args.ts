// The CLI's arguments, pure: argv + environment -> the same input getter the action uses, or a UsageError. The
// flags and the usage text are built from the one table of inputs (INPUTS), so they cannot drift from action.yml.
import { parseArgs } from 'node:util';
import { INPUTS, type InputSpec } from '../core/input-table.js';
import type { InputGetter } from '../core/inputs.js';
import { printable } from '../util/untrusted.js';

export const DEFAULT_TOKEN_ENV = 'REPLICATED_TOKEN';

/** Bad usage (exit 2): the message is printed with the usage text. */
export class UsageError extends Error {
  constructor(message: string) {
    // parseArgs quotes the offending argument: never let a newline or an escape sequence in it reach the output.
    super(printable(message));
    this.name = 'UsageError';
  }
}

export interface CliArgs {
  /** The inputs by action input name, as the action's getter gives them ('' when not given). */
  readonly get: InputGetter;
  /** The environment variable the token was read from. */
  readonly tokenEnv: string;
  readonly help: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const flag = (spec: InputSpec): string => `--${spec.name}`;

export function parseCliArgs(argv: readonly string[], env: Env): CliArgs {
  for (const spec of INPUTS) {
    if (spec.cli.kind !== 'none') continue;
    if (argv.some((a) => a === flag(spec) || a.startsWith(`${flag(spec)}=`))) {
      const cli = spec.cli as { env?: string };
      throw new UsageError(
        cli.env
          ? `${flag(spec)}: the ${spec.name} is never a flag (${spec.cli.why}): put it in $${cli.env}`
          : `${flag(spec)}: the ${spec.name} is never a flag (${spec.cli.why}): put it in $${DEFAULT_TOKEN_ENV}, ` +
              'or name another variable with --token-env',
      );
    }
  }
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
  for (const spec of INPUTS) {
    if (spec.cli.kind === 'flag') options[spec.name] = { type: 'boolean' };
    else if (spec.cli.kind !== 'none') options[spec.name] = { type: 'string', multiple: true };
  }
  options['token-env'] = { type: 'string', multiple: true };
  options.help = { type: 'boolean', short: 'h' };
  let values: Record<string, string[] | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true }).values as typeof values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const once = (name: string): string | undefined => {
    const v = values[name] as string[] | undefined;
    if (v && v.length > 1) throw new UsageError(`--${name} given ${v.length} times; it takes one value`);
    return v?.[0];
  };
  for (const spec of INPUTS) if (spec.cli.kind === 'value') once(spec.name);
  const tokenEnv = once('token-env') ?? DEFAULT_TOKEN_ENV;
  if (!ENV_NAME.test(tokenEnv)) {
    throw new UsageError(`--token-env: ${JSON.stringify(tokenEnv)} is not an environment variable name`);
  }
  const kinds = new Map(INPUTS.map((i) => [i.name as string, i.cli.kind]));
  const envOf = new Map(INPUTS.map((i) => [i.name as string, (i.cli as { env?: string }).env ?? tokenEnv]));
  const get = (name: string): string => {
    const kind = kinds.get(name);
    if (kind === 'none') return env[envOf.get(name) ?? tokenEnv] ?? '';
    const v = values[name];
    if (kind === 'flag') return v === true ? 'true' : '';
    if (kind === 'list') return ((v as string[] | undefined) ?? []).join(',');
    // one line each (`image`: one image a line), as a YAML block gives them to the action
    if (kind === 'lines') return ((v as string[] | undefined) ?? []).join('\n');
    return (v as string[] | undefined)?.[0] ?? '';
  };
  return { get, tokenEnv, help: values.help === true };
}

/** `text` wrapped to `width` columns, every line after the first indented by `indent` spaces. */
function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

function optionText(spec: InputSpec): string {
  const parts = [spec.required ? 'Required.' : '', spec.description];
  if (spec.cli.kind === 'list' || spec.cli.kind === 'lines') parts.push('Repeat the flag for several.');
  if (spec.default !== undefined && spec.cli.kind !== 'flag') parts.push(`Default: ${spec.default}.`);
  return parts.filter(Boolean).join(' ');
}

/** The CLI's usage text; the options are the table's inputs, with the table's descriptions and defaults. */
export function usage(width = 110): string {
  const rows: [string, string][] = [];
  for (const spec of INPUTS) {
    if (spec.cli.kind === 'none') continue;
    const label = spec.cli.kind === 'flag' ? flag(spec) : `${flag(spec)} ${spec.cli.arg}`;
    rows.push([label, optionText(spec)]);
  }
  rows.push([
    '--token-env NAME',
    `The environment variable holding the token (the action's 'token' input). Default: ${DEFAULT_TOKEN_ENV}.`,
  ]);
  rows.push(['-h, --help', 'This text.']);
  const column = Math.max(...rows.map(([label]) => label.length)) + 4;
  const options = rows.map(([label, text]) => `  ${label.padEnd(column - 2)}${wrap(text, width, column)}`);
  return [
    wrap(
      'Usage: replicated-push --app-slug SLUG --image IMAGE [--image IMAGE ...] [--tag TAG ...] [options]',
      width,
      7,
    ),
    '',
    wrap(
      'Pushes a local image to the Replicated registry (or another registry) with retries, the 524 layer ' +
        'advisory, attestation stripping and a registry-side check of every tag. The token is read from ' +
        `$${DEFAULT_TOKEN_ENV} (or the variable --token-env names), never from a flag; a docker:// source's ` +
        'token (source-token) from $REPLICATED_SOURCE_TOKEN.',
      width,
      0,
    ),
    '',
    "Options (the GitHub Action's inputs):",
    ...options,
    '',
    wrap('Exit status: 0 pushed (or dry run passed), 1 the push failed, 2 bad usage or an invalid input.', width, 0),
  ].join('\n');
}
