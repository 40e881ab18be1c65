import { defaultClientConditions, defaultServerConditions } from "vite"
import type { ViteUserConfig } from "vitest/config"

/**
 * Tests run against the packages' TypeScript sources: the `@effect-resilience/source`
 * export condition maps `@effect-resilience/core/*` to `src/*.ts`. The built
 * packages (dist) are checked separately by the smoke tests, which import them
 * from a plain Node process.
 */
export const sourceCondition = "@effect-resilience/source"

export const shared: ViteUserConfig = {
  resolve: { conditions: [sourceCondition, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [sourceCondition, ...defaultServerConditions] } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    sequence: { concurrent: false }
  }
}
