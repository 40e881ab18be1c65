/**
 * A scoped ioredis client — standalone or Redis Cluster — as an Effect service.
 *
 * @since 0.1.0
 */
export * as IoRedis from "./IoRedis.ts"
