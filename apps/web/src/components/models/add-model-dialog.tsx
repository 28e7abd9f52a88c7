"use client";
/**
 * "Upload model" and "Register by URL": the model file (from this computer, or a URL
 * with its sha256 that the server downloads), its tokenizer files, and what the server
 * writes into the signed manifest (name, version, runtime and its version, profile, max
 * context, reference prompt and expected token ids). Files go up in resumable 8 MiB
 * chunks; a dropped connection retries and continues, and a file chosen again after a
 * reload continues the upload it started. When every file is in, the model is created.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { FilePlus2, Link2, Trash2, Upload } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import { ARTIFACT_FILE_ROLES, type ArtifactRuntime, ArtifactFileName, Sha256Hex, missingModelFilesProblem } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { parseTokenIds, roleForFileName } from "@orchard/client";
import { cn } from "@/lib/cn";
import { formatBytes } from "@/lib/format";
import { errorMessage, useTRPC, useTRPCClient } from "@/lib/trpc";
import { RateMeter, fileFingerprint, registerUrl, resumeStore, uploadFile, type UploadProgress as Progress } from "@orchard/client";
import { UploadProgress, type FileProgress } from "./upload-progress";

type Role = (typeof ARTIFACT_FILE_ROLES)[number];
type Runtime = ArtifactRuntime;
export type AddModelMode = "upload" | "url";

const PROFILES = ["gemma4-e2b-extcache", "llm-standard"] as const;
/** llama.cpp: the release node-llama-cpp 3.21.1 ships, as `orchard-llama-runner --capabilities` reports it. */
const DEFAULT_RUNTIME_VERSION: Record<Runtime, string> = { executorch: "1.2.0", sim: "1", "llama.cpp": "v0.4.0" };
/** Runtimes without runner profiles: sim, and llama.cpp (a .gguf carries its architecture and chat template). */
const hasProfiles = (runtime: Runtime): boolean => runtime === "executorch";
const selectClass =
  "h-9 w-full min-w-0 rounded-md border border-input bg-card px-2 text-sm shadow-xs focus-visible:ring-2 focus-visible:ring-ring/40 focus-visible:outline-none disabled:opacity-50";

/** A file of the model: chosen on this computer, or (the model file in URL mode) downloaded by the server. */
interface Entry {
  key: string;
  file: File | null;
  /** The name the runner sees on the device. */
  name: string;
  role: Role;
  /** Set once the server has the whole file (a retry after a refused "create" does not upload it again). */
  uploadId: string | null;
}

const nameError = (name: string): string | null => {
  const r = ArtifactFileName.safeParse(name);
  return r.success ? null : (r.error.issues[0]?.message ?? "not a valid file name");
};

export function AddModelDialog({ mode, onClose }: { mode: AddModelMode | null; onClose: () => void }) {
  const open = mode !== null;
  const trpc = useTRPC();
  const client = useTRPCClient();
  const queryClient = useQueryClient();

  const [model, setModel] = useState<Entry | null>(null);
  const [url, setUrl] = useState("");
  const [urlSha, setUrlSha] = useState("");
  const [urlUploadId, setUrlUploadId] = useState<string | null>(null);
  const [extras, setExtras] = useState<Entry[]>([]);
  const [name, setName] = useState("");
  const [version, setVersion] = useState("");
  const [runtime, setRuntime] = useState<Runtime>("executorch");
  const [runtimeVersion, setRuntimeVersion] = useState(DEFAULT_RUNTIME_VERSION.executorch);
  const [profile, setProfile] = useState<string>(PROFILES[0]);
  const [maxContext, setMaxContext] = useState("");
  const [refPrompt, setRefPrompt] = useState("");
  const [expectedIds, setExpectedIds] = useState("");
  const [progress, setProgress] = useState<FileProgress[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  const create = useMutation(
    trpc.artifacts.create.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.artifacts.list.queryKey() });
      },
    }),
  );

  // Each opening starts from an empty form.
  useEffect(() => {
    if (!open) return;
    setModel(null);
    setUrl("");
    setUrlSha("");
    setUrlUploadId(null);
    setExtras([]);
    setName("");
    setVersion("");
    setRuntime("executorch");
    setRuntimeVersion(DEFAULT_RUNTIME_VERSION.executorch);
    setProfile(PROFILES[0]);
    setMaxContext("");
    setRefPrompt("");
    setExpectedIds("");
    setProgress(null);
    setBusy(false);
    setError(null);
    create.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, mode]);

  // Leaving the page while files go up loses nothing (they continue when chosen again), but ask first.
  useEffect(() => {
    if (!busy) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [busy]);

  const close = () => {
    abort.current?.abort();
    onClose();
  };

  const urlName = (() => {
    try {
      return decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
    } catch {
      return "";
    }
  })();
  const modelName = mode === "url" ? (model?.name ?? urlName) : (model?.name ?? "");
  const resumable = model?.file ? resumeStore.get(fileFingerprint(model.file)) !== null : false;

  // What is wrong with the form, in the order a person fills it in; null when it can go.
  const problem = (() => {
    if (mode === "upload" && !model?.file) return "Choose the model file.";
    if (mode === "url") {
      if (!/^https?:\/\/\S+$/i.test(url.trim())) return "Give the model file's http:// or https:// URL.";
      if (!Sha256Hex.safeParse(urlSha.trim().toLowerCase()).success) return "Give the model file's sha256 (64 hex digits).";
    }
    const names = [modelName, ...extras.map((e) => e.name)];
    for (const n of names) {
      const e = nameError(n);
      if (e) return `File name "${n}": ${e}.`;
    }
    if (new Set(names).size !== names.length) return "Two files have the same name.";
    // The server refuses it too (artifacts.create), but only after every file went up.
    const missing = missingModelFilesProblem(runtime, names);
    if (missing) return missing;
    if (!name.trim()) return "Give the model a name.";
    if (!version.trim()) return "Give the model a version.";
    if (!runtimeVersion.trim()) return "Give the runtime version it was exported for.";
    if (maxContext && !(Number.isInteger(Number(maxContext)) && Number(maxContext) > 0)) return "Max context is a positive whole number.";
    try {
      const ids = parseTokenIds(expectedIds);
      if (ids && !refPrompt.trim()) return "Expected token ids need the reference prompt that gives them.";
    } catch (e) {
      return `Expected token ids: ${(e as Error).message}.`;
    }
    return null;
  })();

  const chooseModel = (file: File | undefined) => {
    if (!file) return;
    setModel({ key: "model", file, name: file.name, role: "model", uploadId: null });
    if (!name) setName(file.name.replace(/\.[^.]+$/, ""));
    // A .gguf is a llama.cpp model, a .pte an ExecuTorch one.
    if (/\.gguf$/i.test(file.name)) changeRuntime("llama.cpp");
    else if (/\.pte$/i.test(file.name)) changeRuntime("executorch");
  };
  const addExtras = (files: FileList | null) => {
    if (!files) return;
    setExtras((prev) => [
      ...prev,
      ...Array.from(files).map((file) => ({
        key: `${file.name}-${file.size}-${file.lastModified}-${Math.random()}`,
        file,
        name: file.name,
        role: roleForFileName(file.name),
        uploadId: null,
      })),
    ]);
  };
  const changeRuntime = (next: Runtime) => {
    if (runtimeVersion === DEFAULT_RUNTIME_VERSION[runtime]) setRuntimeVersion(DEFAULT_RUNTIME_VERSION[next]);
    setRuntime(next);
  };

  /** Uploads (or has the server download) every file not on the server yet, then creates the model. */
  async function submit() {
    if (problem) return;
    const controller = new AbortController();
    abort.current = controller;
    setBusy(true);
    setError(null);
    const entries: (Entry & { url?: string; sha256?: string })[] =
      mode === "url"
        ? [
            {
              key: "model",
              file: null,
              name: modelName,
              role: "model",
              uploadId: urlUploadId,
              url: url.trim(),
              sha256: urlSha.trim().toLowerCase(),
            },
            ...extras,
          ]
        : [model!, ...extras];
    const rows: FileProgress[] = entries.map((e) => ({
      label: e.name,
      state: e.uploadId ? "done" : "waiting",
      bytesDone: e.uploadId ? (e.file?.size ?? 0) : 0,
      bytesTotal: e.file?.size ?? null,
      rateBps: null,
      etaSeconds: null,
      note: null,
    }));
    const show = (i: number, patch: Partial<FileProgress>) => {
      rows[i] = { ...rows[i]!, ...patch };
      setProgress([...rows]);
    };
    setProgress([...rows]);
    const uploadIds: string[] = [];
    try {
      for (const [i, entry] of entries.entries()) {
        if (entry.uploadId) {
          uploadIds.push(entry.uploadId);
          continue;
        }
        show(i, { state: "uploading", bytesDone: 0 });
        let id: string;
        if (entry.file) {
          const fingerprint = fileFingerprint(entry.file);
          const done = await uploadFile(entry.file, {
            resumeId: resumeStore.get(fingerprint),
            onStart: (uploadId) => resumeStore.set(fingerprint, uploadId),
            onProgress: (p: Progress) =>
              show(i, {
                bytesDone: p.bytesDone,
                bytesTotal: p.bytesTotal,
                rateBps: p.rateBps,
                etaSeconds: p.etaSeconds,
                note: p.retry ? `Connection problem (${p.retry.error}); retrying in ${Math.round(p.retry.inMs / 1000)} s.` : null,
              }),
            signal: controller.signal,
          });
          resumeStore.delete(fingerprint);
          id = done.id;
        } else {
          id = await followUrlDownload(entry.name, entry.url!, entry.sha256!, controller.signal, (p) => show(i, p));
        }
        if (entry.file) {
          const setId = (e: Entry) => (e.key === entry.key ? { ...e, uploadId: id } : e);
          if (entry.key === "model") setModel((m) => (m ? setId(m) : m));
          else setExtras((prev) => prev.map(setId));
        } else {
          setUrlUploadId(id);
        }
        uploadIds.push(id);
        show(i, { state: "done", note: null, rateBps: null, etaSeconds: null });
      }
      await create.mutateAsync({
        name: name.trim(),
        version: version.trim(),
        runtime,
        runtimeVersion: runtimeVersion.trim(),
        profile: !hasProfiles(runtime) || !profile ? null : profile,
        maxContext: maxContext ? Number(maxContext) : null,
        reference: refPrompt.trim() ? { prompt: refPrompt.trim(), expectedTokenIds: parseTokenIds(expectedIds) } : null,
        files: entries.map((e, i) => ({ uploadId: uploadIds[i]!, name: e.name, role: e.role })),
      });
      onClose();
    } catch (err) {
      if (controller.signal.aborted) return;
      const at = rows.findIndex((r) => r.state === "uploading");
      if (at >= 0) show(at, { state: "failed", note: errorMessage(err) });
      setError(errorMessage(err));
    } finally {
      setBusy(false);
      abort.current = null;
    }
  }

  /** Registers a URL and follows the server's download of it until it is complete (or failed). */
  async function followUrlDownload(
    fileName: string,
    sourceUrl: string,
    sha256: string,
    signal: AbortSignal,
    show: (p: Partial<FileProgress>) => void,
  ): Promise<string> {
    const upload = await registerUrl({ name: fileName, sourceUrl, sha256 });
    const rate = new RateMeter();
    for (;;) {
      if (signal.aborted) throw new Error("cancelled");
      const u = await client.artifacts.upload.query({ id: upload.id });
      rate.add(u.received);
      const rateBps = rate.rate();
      show({
        bytesDone: u.received,
        bytesTotal: u.size,
        rateBps,
        etaSeconds: rateBps && u.size ? (u.size - u.received) / rateBps : null,
      });
      if (u.state === "complete") return u.id;
      if (u.state === "failed") throw new Error(u.error ?? "The server could not download the file.");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  const title = mode === "url" ? "Register a model by URL" : "Upload a model";
  return (
    <Dialog
      open={open}
      onClose={close}
      title={title}
      description={
        mode === "url"
          ? "The server downloads the model file from the URL and checks it against the sha256 you give; tokenizer files come from this computer."
          : "The files go up in resumable chunks: a dropped connection continues where it stopped, and so does a file chosen again after a reload."
      }
      footer={
        <>
          <Button variant="outline" onClick={close}>
            {busy ? "Stop" : "Cancel"}
          </Button>
          <Button onClick={() => void submit()} disabled={problem !== null || busy} data-testid="model-submit" title={problem ?? undefined}>
            {busy ? <Spinner className="text-primary-foreground" label="Adding" /> : <Upload aria-hidden />}
            {busy ? (create.isPending ? "Creating model" : "Uploading") : "Add model"}
          </Button>
        </>
      }
    >
      <form
        className="flex flex-col gap-4"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <fieldset disabled={busy} className="flex flex-col gap-4">
          <legend className="sr-only">Files</legend>
          {mode === "url" ? (
            <>
              <Field label="Model file URL" htmlFor="model-url">
                <Input
                  id="model-url"
                  type="url"
                  value={url}
                  onChange={(e) => {
                    setUrl(e.target.value);
                    setUrlUploadId(null);
                  }}
                  placeholder="https://example.com/gemma4_e2b_text_int4_extcache.pte"
                  data-testid="model-url"
                />
              </Field>
              <Field
                label="sha256 of the file"
                htmlFor="model-url-sha"
                hint="The server refuses the file if its bytes have another sha256."
              >
                <Input
                  id="model-url-sha"
                  value={urlSha}
                  onChange={(e) => {
                    setUrlSha(e.target.value);
                    setUrlUploadId(null);
                  }}
                  className="font-mono text-xs"
                  spellCheck={false}
                  data-testid="model-url-sha256"
                />
              </Field>
              <Field label="File name on the device" htmlFor="model-url-name">
                <Input
                  id="model-url-name"
                  value={modelName}
                  onChange={(e) => setModel({ key: "model", file: null, name: e.target.value, role: "model", uploadId: null })}
                  aria-invalid={modelName !== "" && nameError(modelName) !== null}
                />
              </Field>
            </>
          ) : (
            <Field
              label="Model file"
              htmlFor="model-file"
              hint={
                model?.file ? (
                  <>
                    {formatBytes(model.file.size)}
                    {resumable ? " · an upload of this file was started before: it continues where it stopped" : null}
                  </>
                ) : (
                  "The .pte (ExecuTorch), the .gguf (llama.cpp: tokenizer and chat template inside) or a simulated model file."
                )
              }
            >
              <input
                id="model-file"
                type="file"
                className="text-sm file:mr-3 file:rounded-md file:border file:border-input file:bg-card file:px-3 file:py-1.5 file:text-sm"
                onChange={(e) => chooseModel(e.target.files?.[0])}
                data-testid="model-file"
              />
            </Field>
          )}
          {mode === "upload" && model && nameError(model.name) ? (
            <Field label="File name on the device" htmlFor="model-file-name" hint={nameError(model.name)}>
              <Input id="model-file-name" value={model.name} aria-invalid onChange={(e) => setModel({ ...model, name: e.target.value })} />
            </Field>
          ) : null}

          <div className="flex flex-col gap-1.5">
            <div className="flex items-center justify-between gap-2">
              <span className="text-sm font-medium">Tokenizer and other files</span>
              <label
                className={cn("inline-flex cursor-pointer items-center gap-1.5 rounded-md px-2 py-1 text-xs font-medium hover:bg-muted")}
              >
                <FilePlus2 className="size-4" aria-hidden />
                Add files
                <input
                  type="file"
                  multiple
                  className="sr-only"
                  onChange={(e) => addExtras(e.target.files)}
                  data-testid="model-extra-files"
                />
              </label>
            </div>
            {extras.length === 0 ? (
              <p className="text-xs text-muted-foreground">
                tokenizer.json, tokenizer_config.json, chat_template.jinja … (none for a simulated model or a .gguf)
              </p>
            ) : (
              <ul className="flex flex-col gap-1.5" aria-label="Other files">
                {extras.map((e) => (
                  <li key={e.key} className="flex items-center gap-2" data-testid="model-extra-file">
                    <Input
                      aria-label="File name on the device"
                      value={e.name}
                      aria-invalid={nameError(e.name) !== null}
                      onChange={(ev) => setExtras((prev) => prev.map((x) => (x.key === e.key ? { ...x, name: ev.target.value } : x)))}
                      className="h-8 flex-1 text-xs"
                    />
                    <select
                      aria-label="Role"
                      value={e.role}
                      onChange={(ev) =>
                        setExtras((prev) => prev.map((x) => (x.key === e.key ? { ...x, role: ev.target.value as Role } : x)))
                      }
                      className={cn(selectClass, "h-8 w-36 text-xs")}
                    >
                      {ARTIFACT_FILE_ROLES.filter((r) => r !== "model").map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                    <Button
                      variant="ghost"
                      size="icon"
                      aria-label={`Remove ${e.name}`}
                      onClick={() => setExtras((prev) => prev.filter((x) => x.key !== e.key))}
                    >
                      <Trash2 aria-hidden />
                    </Button>
                  </li>
                ))}
              </ul>
            )}
          </div>
        </fieldset>

        <fieldset disabled={busy} className="flex flex-col gap-4">
          <legend className="sr-only">Model</legend>
          <div className="grid gap-4 sm:grid-cols-2">
            <Field label="Name" htmlFor="model-name">
              <Input id="model-name" value={name} maxLength={128} onChange={(e) => setName(e.target.value)} data-testid="model-name" />
            </Field>
            <Field label="Version" htmlFor="model-version">
              <Input
                id="model-version"
                value={version}
                maxLength={64}
                onChange={(e) => setVersion(e.target.value)}
                placeholder="2026.11.1"
                data-testid="model-version"
              />
            </Field>
            <Field label="Runtime" htmlFor="model-runtime">
              <select
                id="model-runtime"
                value={runtime}
                onChange={(e) => changeRuntime(e.target.value as Runtime)}
                className={selectClass}
                data-testid="model-runtime-select"
              >
                <option value="executorch">ExecuTorch</option>
                <option value="llama.cpp">llama.cpp (GGUF)</option>
                <option value="sim">sim (simulated model)</option>
              </select>
            </Field>
            <Field
              label="Runtime version"
              htmlFor="model-runtime-version"
              hint={
                runtime === "llama.cpp"
                  ? "The llama.cpp release the devices' llama runner loads (orchard-llama-runner --capabilities)."
                  : "The version it was exported with."
              }
            >
              <Input
                id="model-runtime-version"
                value={runtimeVersion}
                maxLength={64}
                onChange={(e) => setRuntimeVersion(e.target.value)}
                data-testid="model-runtime-version"
              />
            </Field>
            <Field
              label="Profile"
              htmlFor="model-profile"
              hint={
                runtime === "sim"
                  ? "Simulated models have none."
                  : runtime === "llama.cpp"
                    ? "GGUF models have none: the file says how to run it."
                    : "How the runner drives it."
              }
            >
              <select
                id="model-profile"
                value={hasProfiles(runtime) ? profile : ""}
                disabled={!hasProfiles(runtime)}
                onChange={(e) => setProfile(e.target.value)}
                className={selectClass}
              >
                {hasProfiles(runtime) ? null : <option value="">none</option>}
                {PROFILES.map((p) => (
                  <option key={p} value={p}>
                    {p}
                  </option>
                ))}
                <option value="">runner default</option>
              </select>
            </Field>
            <Field label="Max context" htmlFor="model-max-context" hint="Tokens; optional.">
              <Input
                id="model-max-context"
                type="number"
                min={1}
                value={maxContext}
                onChange={(e) => setMaxContext(e.target.value)}
                placeholder="511"
              />
            </Field>
          </div>
          <Field label="Reference prompt" htmlFor="model-ref-prompt" hint="Devices run it after activating the model; optional.">
            <Input
              id="model-ref-prompt"
              value={refPrompt}
              maxLength={4000}
              onChange={(e) => setRefPrompt(e.target.value)}
              placeholder="The capital of France is"
              data-testid="model-ref-prompt"
            />
          </Field>
          <Field
            label="Expected token ids"
            htmlFor="model-expected-ids"
            hint="The ids greedy decoding must give for the prompt, comma-separated; empty = only check that it generates."
          >
            <Input
              id="model-expected-ids"
              value={expectedIds}
              onChange={(e) => setExpectedIds(e.target.value)}
              className="font-mono text-xs"
              placeholder="818, 5279, 529, 7001, 563, 5213, 50429, 84750, 106"
              data-testid="model-expected-ids"
            />
          </Field>
        </fieldset>
        {/* Enter in a field submits. */}
        <button type="submit" hidden />
      </form>
      {progress ? <UploadProgress files={progress} /> : null}
      {problem && (model || url || name) && !busy ? (
        <p className="text-xs text-muted-foreground" data-testid="model-form-problem">
          {problem}
        </p>
      ) : null}
      {error ? <Alert>{error}</Alert> : null}
      {mode === "url" ? null : (
        <p className="flex items-center gap-1.5 text-xs text-muted-foreground">
          <Link2 className="size-3.5" aria-hidden />
          The model file is on a server already? Use “Register by URL” instead.
        </p>
      )}
    </Dialog>
  );
}
