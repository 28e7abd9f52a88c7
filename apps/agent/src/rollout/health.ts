/**
 * The health gate's verdict on the reference generation, pure: the token ids must be
 * the manifest's (when it has them), something must have been generated, and decode
 * must be at least the rollout's floor.
 */
import type { RolloutErrorCode, RunnerDone } from "@orchard/contracts";

/** Used for the tokens/s floor when the manifest has no reference prompt. */
export const HEALTH_PROMPT = "Say hello.";
/** Tokens generated when the reference has no expected ids (or there is no reference). */
export const HEALTH_DEFAULT_TOKENS = 16;

export interface HealthVerdictInput {
  done: Pick<RunnerDone, "token_ids" | "generated_tokens" | "decode_tok_s">;
  expectedTokenIds: readonly number[] | null;
  minDecodeTokS: number | null;
}

export function healthProblem(input: HealthVerdictInput): { code: RolloutErrorCode; message: string } | null {
  const { done, expectedTokenIds, minDecodeTokS } = input;
  if (expectedTokenIds) {
    const got = done.token_ids;
    const n = Math.max(got.length, expectedTokenIds.length);
    for (let i = 0; i < n; i += 1) {
      if (got[i] !== expectedTokenIds[i]) {
        return {
          code: "reference_mismatch",
          message: `the reference prompt gave other token ids than the manifest's: first difference at position ${i} (expected ${expectedTokenIds[i] ?? "end"}, got ${got[i] ?? "end"}); expected [${expectedTokenIds.slice(0, 32).join(", ")}], got [${got.slice(0, 32).join(", ")}]`,
        };
      }
    }
  } else if (done.generated_tokens === 0) {
    return { code: "reference_mismatch", message: "the model generated no tokens for the reference prompt" };
  }
  if (minDecodeTokS !== null && done.decode_tok_s < minDecodeTokS) {
    return {
      code: "too_slow",
      message: `decode ran at ${done.decode_tok_s.toFixed(1)} tokens/s on the reference prompt, under the rollout's floor of ${minDecodeTokS} tokens/s`,
    };
  }
  return null;
}
