export declare const CONFIGURE_RECORD: string;
export interface NativeConfigurePlan {
  configure: boolean;
  reason: string;
  args: string[];
  cleanCache: boolean;
}
export interface NativeConfigureInput {
  root: string;
  buildDir?: string;
  sourceDir?: string;
  executorchCmake?: string | null;
  /** on: the caller runs the native tests; off: it must not need GoogleTest (npm install); keep (default): either. */
  tests?: "on" | "off" | "keep";
}
export declare function planNativeConfigure(input: NativeConfigureInput): NativeConfigurePlan;
export declare function recordConfigureStarted(root: string, plan: NativeConfigurePlan, buildDir?: string): void;
export declare function recordConfigureDone(root: string, plan: NativeConfigurePlan, buildDir?: string): void;
export declare function recordConfigureInvalid(root: string, buildDir?: string): void;
