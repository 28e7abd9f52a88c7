export declare function formatElapsed(ms: number): string;
export declare function parseCompileProgress(line: string): { percent: number; done?: number; total?: number } | null;
export declare function parseNextPhase(line: string): string | null;
export declare const NATIVE_PACKAGES: string[];
export declare function nativeFailureReason(stage: "configure" | "build", output: string): string;
export declare function runnerNotBuiltSentence(reason: string): string;
export declare function fingerprint(root: string, targets: string[], opts?: { skip?: (p: string) => boolean; extra?: string[] }): string;
export declare function readStamp(file: string): string | null;
export declare function writeStamp(file: string, inputs: string): void;
export declare class Reporter {
  constructor(opts?: { out?: NodeJS.WritableStream; err?: NodeJS.WritableStream; live?: boolean });
  readonly live: boolean;
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  line(msg: string): void;
  error(msg: string): void;
  status(msg: string): void;
  clear(): void;
}
export interface StepResult {
  ok: boolean;
  code: number | null;
  error: (Error & { code?: string }) | null;
  tail: string[];
  output: string;
  elapsedMs: number;
}
export declare function runStep(opts: {
  reporter: Reporter;
  title: string;
  cmd: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
  progress?: (line: string) => string | null;
  plainEveryMs?: number;
}): Promise<StepResult>;
export declare function reportFailure(reporter: Reporter, title: string, result: StepResult, logFile: string): void;
export declare function bundleEntry(opts: { root: string; entry: string; bundle: string }): Promise<{ inputs: number }>;
export declare const NATIVE_INPUTS: string[];
export declare const DASHBOARD_INPUTS: string[];
export declare function dashboardInputSkip(p: string): boolean;
