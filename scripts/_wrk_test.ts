import assert from "node:assert/strict";
import { ms, parseWrkReport } from "./_wrk.ts";

/** A `wrk --latency` report with the p99.9 line our Lua script adds. */
const REPORT = `Running 2s test @ http://127.0.0.1:41234/v1/classify
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.41ms    1.86ms  21.20ms   78.95%
    Req/Sec     4.78k   312.40     5.31k    72.50%
  Latency Distribution
     50%    3.10ms
     75%    4.02ms
     90%    5.44ms
     99%    8.43ms
  19036 requests in 2.00s, 14.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   9518.20
Transfer/sec:      7.45MB
P999_US 10904
`;

Deno.test("ms() reads wrk's latencies in us, ms and s", () => {
  assert.equal(ms("850.00us"), 0.85);
  assert.equal(ms("1.23ms"), 1.23);
  assert.equal(ms("1.02s"), 1020);
  assert.ok(Number.isNaN(ms("fast")));
  assert.ok(Number.isNaN(ms(undefined)));
});

Deno.test("parseWrkReport() takes req/s, p50, p99, p99.9 and the errors from a report", () => {
  assert.deepEqual(parseWrkReport(REPORT), {
    rps: 9518.2,
    p50: 3.1,
    p99: 8.43,
    p999: 10.904,
    errors: "5 non-2xx; connect 0, read 2, write 0, timeout 1",
  });
});

Deno.test("parseWrkReport() leaves errors empty on a clean run and NaN for what is missing", () => {
  const clean = REPORT.replace(/ {2}Socket errors.*\n {2}Non-2xx.*\n/, "");
  assert.equal(parseWrkReport(clean).errors, "");
  const r = parseWrkReport("wrk: connection refused\n");
  assert.ok(Number.isNaN(r.rps) && Number.isNaN(r.p50) && Number.isNaN(r.p999));
});
