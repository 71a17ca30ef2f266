/**
 * Lines of a byte stream (a child process's stdout or stderr), decoded as UTF-8 with a
 * streaming TextDecoder rather than `pipeThrough(new TextDecoderStream())`, which breaks type
 * checking when several test files are checked together. Used by the replica supervisor
 * (serve/replicas.ts) and by the tests' server harness (testkit/server_process.ts).
 */

/**
 * Calls `onLine` for each line of `stream` (without the newline), and for a last line without
 * one. Resolves when the stream ends; a stream that errors (the process went away) ends it too.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const bytes of stream) {
      buf += decoder.decode(bytes, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) onLine(buf.slice(0, nl)), buf = buf.slice(nl + 1);
    }
  } catch { /* the process went away */ }
  if (buf) onLine(buf);
}
