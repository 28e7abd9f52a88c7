export declare function inputsFile(bundle: string): string;
export declare function fileStamp(file: string): string | null;
export declare function bundleStaleReason(bundle: string, root: string): string | null;
export declare function launch(binUrl: string, name: string, source: string): Promise<void>;
