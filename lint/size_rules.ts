/**
 * Lint rules that keep modules and functions small enough to read in one sitting: no source
 * file over 400 lines and no function over 80, outside tests and generated files. An exception
 * is listed in EXCEPTIONS below with its reason, so the list of exceptions is in one place.
 */
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

/**
 * The known exceptions, each with the reason it stands: path -> "(file)" or a function's name ->
 * reason. A new exception belongs here with its reason, not in a lint-ignore comment.
 */
const EXCEPTIONS: Record<string, Record<string, string>> = {};

function exempt(filename: string): boolean {
  return /_test\.ts$|\/testdata\/|\/generated\//.test(filename);
}

/** The name a reader would look a function up by (its declaration, method, key or variable). */
// deno-lint-ignore no-explicit-any
function nameOf(node: any): string {
  if (node.id?.name) return node.id.name;
  const p = node.parent;
  if (p?.type === "MethodDefinition" || p?.type === "Property") {
    return p.key?.type === "PrivateIdentifier" ? `#${p.key.name}` : p.key?.name ?? "(anonymous)";
  }
  if (p?.type === "VariableDeclarator") return p.id?.name ?? "(anonymous)";
  return "(anonymous)";
}

/** The exception listed for `filename` (a file, or one of its functions by name), if any. */
function exception(filename: string, what: string): string | undefined {
  for (const [path, reasons] of Object.entries(EXCEPTIONS)) {
    if (filename.endsWith(`/${path}`)) return reasons[what];
  }
  return undefined;
}

function linesOf(text: string, range: readonly [number, number]): number {
  let n = 1;
  for (let i = range[0]; i < range[1]; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

const plugin: Deno.lint.Plugin = {
  name: "latent-edge",
  rules: {
    "max-file-lines": {
      create(context) {
        return {
          Program(node) {
            if (exempt(context.filename)) return;
            const text = context.sourceCode.text;
            const n = linesOf(text, [0, text.trimEnd().length]);
            if (n > MAX_FILE_LINES && !exception(context.filename, "(file)")) {
              context.report({
                node,
                message: `${n} lines, over ${MAX_FILE_LINES}: split the module by role`,
              });
            }
          },
        };
      },
    },
    "max-function-lines": {
      create(context) {
        const check = (
          node:
            | Deno.lint.FunctionDeclaration
            | Deno.lint.FunctionExpression
            | Deno.lint.ArrowFunctionExpression,
        ) => {
          if (exempt(context.filename)) return;
          const n = linesOf(context.sourceCode.text, node.range);
          const name = nameOf(node);
          if (n > MAX_FUNCTION_LINES && !exception(context.filename, name)) {
            context.report({
              node,
              message:
                `function ${name} of ${n} lines, over ${MAX_FUNCTION_LINES}: cut it at its seams`,
            });
          }
        };
        return {
          FunctionDeclaration: check,
          FunctionExpression: check,
          ArrowFunctionExpression: check,
        };
      },
    },
  },
};

export default plugin;
