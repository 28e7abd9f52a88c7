/** Polls `probe` until it returns something truthy (sync or async) and resolves with it; fails after timeoutMs saying what it waited for. */
export function until<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
  pollMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = async () => {
      try {
        const value = await probe();
        if (value) resolve(value);
        else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
        else setTimeout(() => void check(), pollMs);
      } catch (error) {
        reject(error as Error);
      }
    };
    void check();
  });
}
