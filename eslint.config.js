// One lint setup for every TypeScript workspace (the C++ in native/ has its own warnings-as-errors build).
import js from "@eslint/js";
import globals from "globals";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      ".venv/**",
      "test/.models/**",
      "**/.next/**",
      "native/build/**",
      // The compiled CLI and agent (scripts/build.mjs) and the build log
      "apps/cli/dist/**",
      "apps/agent/dist/**",
      ".orchard/**",
      "apps/web/src/server/db/generated/**",
      "apps/web/next-env.d.ts",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
    },
  },
  {
    files: ["apps/web/src/**/*.tsx", "apps/web/src/lib/**/*.ts"],
    plugins: { "react-hooks": reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
);
