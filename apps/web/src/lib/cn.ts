/** Joins class names, skipping falsy ones (the components' variants never conflict, so no merging is needed). */
export function cn(...parts: (string | false | null | undefined)[]): string {
  return parts.filter(Boolean).join(" ");
}
