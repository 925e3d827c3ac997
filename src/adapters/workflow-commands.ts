// How an action talks to the GitHub runner: inputs and step state from the environment, workflow commands on
// stdout (::add-mask::, ::warning title=...::, ::group::), outputs and state appended to the files the runner
// names, the job summary appended to its file. This is the part of @actions/core the action uses, written out
// because @actions/core also loads its OIDC client at startup (@actions/http-client and undici): 490 kB of the
// bundle and ~100 ms of every step's cold start, for getIDToken, which this action never calls. The escaping and
// the delimiter rules are @actions/core's own; __tests__/unit/workflow-commands.test.ts checks every function here
// against @actions/core (a dev dependency) byte for byte.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync } from 'node:fs';
import { access, appendFile, constants } from 'node:fs/promises';
import { EOL } from 'node:os';

export interface AnnotationProperties {
  readonly title?: string;
}

/** `%`, CR and LF escaped: a message can never end its command line and start another. */
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** As escapeData, and `:` and `,`, which separate a command's properties. */
function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** `::command k=v,...::message`; empty values are left out (a properties object with none still gets its space). */
function issue(command: string, properties: Readonly<Record<string, string | undefined>>, message: string): void {
  const props = Object.entries(properties)
    .filter((entry): entry is [string, string] => Boolean(entry[1]))
    .map(([k, v]) => `${k}=${escapeProperty(v)}`)
    .join(',');
  const space = Object.keys(properties).length > 0 ? ' ' : '';
  process.stdout.write(`::${command}${space}${props}::${escapeData(message)}${EOL}`);
}

/** An annotation's properties: none when the caller gave none. */
function annotation(props: AnnotationProperties | undefined): Record<string, string | undefined> {
  return props && Object.keys(props).length > 0 ? { title: props.title } : {};
}

/** NAME<<DELIMITER, the value, DELIMITER: a value with newlines stays one value. */
function appendKeyValue(file: 'OUTPUT' | 'STATE', key: string, value: string): void {
  const path = process.env[`GITHUB_${file}`];
  if (!path) throw new Error(`Unable to find environment variable for file command ${file}`);
  if (!existsSync(path)) throw new Error(`Missing file at path: ${path}`);
  const delimiter = `ghadelimiter_${randomUUID()}`;
  if (key.includes(delimiter))
    throw new Error(`Unexpected input: name should not contain the delimiter "${delimiter}"`);
  if (value.includes(delimiter))
    throw new Error(`Unexpected input: value should not contain the delimiter "${delimiter}"`);
  appendFileSync(path, `${key}<<${delimiter}${EOL}${value}${EOL}${delimiter}${EOL}`, { encoding: 'utf8' });
}

/** The input as the runner passes it (INPUT_NAME, spaces as underscores), trimmed; '' when not given. */
export function getInput(name: string): string {
  return (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '').trim();
}

export function getState(name: string): string {
  return process.env[`STATE_${name}`] || '';
}

export function saveState(name: string, value: string): void {
  if (process.env.GITHUB_STATE) return appendKeyValue('STATE', name, value);
  issue('save-state', { name }, value);
}

export function setOutput(name: string, value: string): void {
  if (process.env.GITHUB_OUTPUT) return appendKeyValue('OUTPUT', name, value);
  process.stdout.write(EOL);
  issue('set-output', { name }, value);
}

/** From here on the runner shows `secret` as *** wherever it would print it. */
export function setSecret(secret: string): void {
  issue('add-mask', {}, secret);
}

export function info(message: string): void {
  process.stdout.write(message + EOL);
}

export function debug(message: string): void {
  issue('debug', {}, message);
}

export function notice(message: string, props?: AnnotationProperties): void {
  issue('notice', annotation(props), message);
}

export function warning(message: string, props?: AnnotationProperties): void {
  issue('warning', annotation(props), message);
}

export function error(message: string, props?: AnnotationProperties): void {
  issue('error', annotation(props), message);
}

/** A collapsible group around `fn`'s lines; GitHub does not nest groups. */
export async function group<T>(name: string, fn: () => Promise<T>): Promise<T> {
  issue('group', {}, name);
  try {
    return await fn();
  } finally {
    issue('endgroup', {}, '');
  }
}

/** Appends Markdown to the job summary; throws when the runner gives no summary file or it cannot be written. */
export async function appendSummary(markdown: string): Promise<void> {
  const path = process.env.GITHUB_STEP_SUMMARY;
  if (!path)
    throw new Error(
      'Unable to find environment variable for $GITHUB_STEP_SUMMARY. Check if your runtime environment supports job summaries.',
    );
  try {
    await access(path, constants.R_OK | constants.W_OK);
  } catch {
    throw new Error(`Unable to access summary file: '${path}'. Check if the file has correct read/write permissions.`);
  }
  await appendFile(path, markdown, { encoding: 'utf8' });
}
