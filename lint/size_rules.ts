/**
 * Lint rules that keep modules and functions small enough to read in one sitting: no source
 * file over 400 lines and no function over 80, outside tests and generated files. An exception
 * is marked where it stands with `// deno-lint-ignore latent-edge/<rule>` and a reason, so the
 * list of exceptions is the output of `grep -rn "latent-edge/" --include=*.ts .`.
 */
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

function exempt(filename: string): boolean {
  return /_test\.ts$|\/testdata\/|\/generated\//.test(filename);
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
            if (n > MAX_FILE_LINES) {
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
          if (n > MAX_FUNCTION_LINES) {
            context.report({
              node,
              message: `function of ${n} lines, over ${MAX_FUNCTION_LINES}: cut it at its seams`,
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
