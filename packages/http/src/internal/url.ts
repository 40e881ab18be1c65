/**
 * The path of a request URL (a path with a query, or an absolute URL): the
 * part before any `?` or `#`; an unparseable absolute URL is returned as it is.
 *
 * @internal
 */
export const pathOf = (url: string): string => {
  if (url.startsWith("/")) {
    const end = url.search(/[?#]/)
    return end === -1 ? url : url.slice(0, end)
  }
  try {
    return new URL(url).pathname
  } catch {
    return url
  }
}
