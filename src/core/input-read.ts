// How one input is read: trimmed, refused when it holds a control character, its table default applied, and the
// one error type that names it. Every parser in inputs.ts and input-source.ts reads through these. Pure.
import { controlCharacterAt } from '../util/untrusted.js';
import { inputSpec, type InputName } from './input-table.js';

/** An input the user must fix; `input` is the exact input name, for the annotation. */
export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}

export type InputGetter = (name: string) => string;

/** Values separated by newlines (\n, \r\n or \r: the runner reads each as a line end) or commas. */
export function splitList(text: string): string[] {
  return text
    .split(/[\r\n,]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * The input as written, trimmed; refused when it holds a control character. Every input is read through here, so
 * a value quoted in any later message is one printable line. The raw value is never echoed: it may be a secret,
 * and a newline in it would become a log line of its own.
 */
export function given(get: InputGetter, name: InputName): string {
  const spec = inputSpec(name);
  const list = spec.cli.kind === 'list';
  const lines = spec.cli.kind === 'lines';
  const value = get(name).trim();
  const at = controlCharacterAt(value, list || lines);
  if (at >= 0) {
    const code = value.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0');
    throw new InputError(
      name,
      `Input '${name}' contains a control character (U+${code} at character ${at + 1}); ` +
        (list
          ? 'only newlines and commas may separate its values.'
          : lines
            ? 'only newlines may separate its lines.'
            : 'it must be one line of text.') +
        ' The value is not shown.',
    );
  }
  return value;
}

/** The input, or what the table says an empty one means (action.yml's default, or the documented fallback). */
export function valueOf(get: InputGetter, name: InputName): string {
  const spec = inputSpec(name);
  return given(get, name) || spec.default || spec.unset || '';
}

export function oneOf<T extends string>(get: InputGetter, name: InputName, allowed: readonly T[]): T {
  const v = valueOf(get, name);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new InputError(name, `Input '${name}' must be one of ${allowed.join(', ')}; got '${v}'.`);
  }
  return v as T;
}

export function required(get: InputGetter, name: InputName): string {
  const v = given(get, name);
  if (!v) throw new InputError(name, `Input '${name}' is required.`);
  return v;
}

export function parseBool(get: InputGetter, name: InputName): boolean {
  const value = valueOf(get, name);
  const v = value.toLowerCase();
  if (v === 'false') return false;
  if (v === 'true') return true;
  throw new InputError(name, `Input '${name}' must be true or false; got '${value}'.`);
}
