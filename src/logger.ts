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

/** Collects everything; for tests and for callers that only want the result. */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  readonly notices: Annotation[] = [];
  readonly warnings: Annotation[] = [];
  info(message: string): void {
    this.lines.push(message);
  }
  progress(message: string): void {
    this.lines.push(message);
  }
  debug(message: string): void {
    this.lines.push(`debug: ${message}`);
  }
  notice(a: Annotation): void {
    this.notices.push(a);
  }
  warning(a: Annotation): void {
    this.warnings.push(a);
  }
  async group<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.lines.push(`[${name}]`);
    return fn();
  }
}
