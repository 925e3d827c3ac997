// The core's only way to speak. The GitHub adapter maps it to workflow commands; the CLI to plain lines.

export interface Annotation {
  readonly title: string;
  readonly message: string;
}

export interface Logger {
  info(message: string): void;
  /** The periodic "which layer, how far, elapsed" line during a push; a terminal may redraw it in place. */
  progress(message: string): void;
  debug(message: string): void;
  notice(a: Annotation): void;
  warning(a: Annotation): void;
  group<T>(name: string, fn: () => Promise<T>): Promise<T>;
}
