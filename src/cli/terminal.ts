// Terminal manners: colours, screen control and progress bars only on an interactive terminal,
// never into a pipe or a file, never with NO_COLOR (https://no-color.org) or --json.

/** true when escape sequences may be written to `stream` */
export function decorates (stream: NodeJS.WriteStream, json = false): boolean {
  return stream.isTTY === true && !json && (process.env.NO_COLOR ?? '') === ''
}

/** `text` in cyan on a decorated stream, plain otherwise */
export function cyan (stream: NodeJS.WriteStream, text: string): string {
  return decorates(stream) ? `\x1b[36m${text}\x1b[0m` : text
}

/** clears the screen and homes the cursor */
export const CLEAR_SCREEN = '\x1b[2J\x1b[H'
