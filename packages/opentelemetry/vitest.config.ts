import { defaultServerConditions } from "vite"
import { defineProject } from "vitest/config"
import { shared, sourceCondition } from "../../vitest.shared.ts"

// Node's conditions only: the OpenTelemetry packages' `module` builds (picked
// by the client conditions the other projects use) import files without
// extensions, which Node's loader refuses.
const conditions = [sourceCondition, ...defaultServerConditions.filter((condition) => condition !== "module")]

export default defineProject({
  ...shared,
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: { ...shared.test, include: ["test/**/*.test.ts"], name: "opentelemetry" }
})
