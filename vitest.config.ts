import { defineConfig, mergeConfig } from "vitest/config"
import { shared } from "./vitest.shared.ts"

export default defineConfig({
  test: {
    projects: [
      "packages/*/vitest.config.ts",
      // the hot paths again on the public-API fallback of internal/frame.ts
      mergeConfig(shared, {
        test: {
          name: "core-portable",
          root: "packages/core",
          include: [
            "test/CircuitBreaker.test.ts",
            "test/Retry.test.ts",
            "test/Bulkhead.test.ts",
            "test/Fallback.test.ts",
            "test/BulkheadAdaptive.test.ts",
            "test/AdaptiveThrottle.test.ts",
            "test/LoadBalancer.test.ts",
            "test/Registry.test.ts",
            "test/internal/frame.test.ts"
          ],
          env: { EFFECT_RESILIENCE_FRAMES: "0" }
        }
      }),
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
