/**
 * Class names as a bundle and a dataset carry them: kept exactly as given (UTF-8, spaces
 * allowed), but none empty and none equal to another once Unicode-normalised (NFC), since
 * "é" typed two ways would otherwise be two classes a user cannot tell apart.
 */

export const MIN_CLASSES = 2;
export const MAX_CLASSES = 1000;

/** Why `names` is not a usable label list, or null when it is. */
export function labelNamesProblem(names: readonly unknown[]): string | null {
  if (names.length < MIN_CLASSES || names.length > MAX_CLASSES) {
    return `must list ${MIN_CLASSES} to ${MAX_CLASSES} class names, got ${names.length}`;
  }
  const seen = new Map<string, number>();
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (typeof n !== "string" || n.trim() === "") {
      return `class name ${i} is empty or not a string (${JSON.stringify(n)})`;
    }
    const key = n.normalize("NFC");
    const j = seen.get(key);
    if (j !== undefined) {
      return `class names ${j} and ${i} (${JSON.stringify(names[j])}, ${
        JSON.stringify(n)
      }) are the same after Unicode normalisation`;
    }
    seen.set(key, i);
  }
  return null;
}
