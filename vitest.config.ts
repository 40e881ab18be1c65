import { defineConfig, mergeConfig } from "vitest/config"
import { shared } from "./vitest.shared.ts"

export default defineConfig({
  test: {
    projects: [
      "packages/*/vitest.config.ts",
      mergeConfig(shared, {
        test: {
          name: "integration",
          root: ".",
          include: ["test/**/*.test.ts"],
          exclude: ["**/node_modules/**", "test/bench/**", "packages/**"]
        }
      }),
      mergeConfig(shared, {
        test: {
          name: "doctests",
          root: ".",
          include: ["build/doctests/**/*.test.ts"],
          exclude: ["**/node_modules/**"]
        }
      })
    ]
  }
})
