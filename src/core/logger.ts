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

/**
 * The log of one image of several pushed side by side (issue 20): every line starts with its repository, so lines
 * that interleave still say whose they are. Groups are not opened (two images' groups would nest in the runner's
 * log); their name is a line.
 */
export function imageLogger(log: Logger, target: string): Logger {
  const tag = (m: string) =>
    m
      .split('\n')
      .map((l) => `[${target}] ${l}`)
      .join('\n');
  return {
    info: (m) => log.info(tag(m)),
    progress: (m) => log.progress(tag(m)),
    debug: (m) => log.debug(tag(m)),
    notice: (a) => log.notice({ title: `${target}: ${a.title}`, message: a.message }),
    warning: (a) => log.warning({ title: `${target}: ${a.title}`, message: a.message }),
    group: async (name, fn) => {
      log.info(tag(name));
      return fn();
    },
  };
}
