/**
 * `publish ...`: passed through to the publisher's own command line (trainer/publish.ts), which
 * reports its errors itself; loaded only when asked for.
 */
import { log } from "./common.ts";

export async function cmdPublish(args: string[]): Promise<number> {
  const { publishMain, reportPublishError } = await import("../publish.ts");
  return await publishMain(args, log, process.env).catch((e) => reportPublishError(e, log));
}
