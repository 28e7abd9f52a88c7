/** Everything request handlers may call, built once in app.ts and passed into tRPC, REST and socket.io. */
import type { AlertService } from "./alerts.ts";
import type { ApiKeyService } from "./api-keys.ts";
import type { AuditService } from "./audit.ts";
import type { ArtifactService } from "./artifacts.ts";
import type { AuthService } from "./auth.ts";
import type { BenchmarkService } from "./benchmarks.ts";
import type { ChatRelay } from "./chat-relay.ts";
import type { ConversationService } from "./conversations.ts";
import type { DeviceService } from "./devices.ts";
import type { EnrollmentService } from "./enrollment.ts";
import type { FleetService } from "./fleet.ts";
import type { FleetThroughput } from "./fleet-throughput.ts";
import type { TelemetryStore } from "./telemetry-store.ts";
import type { UploadService } from "./uploads.ts";
import type { UserService } from "./users.ts";
import type { RolloutService } from "./rollouts.ts";
import type { RuntimeComparisonService } from "./runtime-comparisons.ts";
import type { CredentialService } from "./credentials.ts";
import type { ServerLink } from "../mqtt/link.ts";
import type { Metrics } from "../metrics.ts";
import type { Database } from "../db/client.ts";
import { ORCHARD_VERSION } from "../version.ts";

export interface SystemInfo {
  version: string;
  db: "pglite" | "postgresql";
  broker: { embedded: boolean; url: string; connected: boolean };
}

export class SystemService {
  constructor(
    private readonly db: Database,
    private readonly link: ServerLink,
    private readonly broker: { embedded: boolean; url: string },
  ) {}

  info(): SystemInfo {
    return { version: ORCHARD_VERSION, db: this.db.kind, broker: { ...this.broker, connected: this.link.connected() } };
  }

  async health(): Promise<{ status: "ok" | "degraded"; db: "ok" | "down"; broker: "ok" | "down"; version: string }> {
    const db = (await this.db.ping()) ? "ok" : "down";
    const broker = this.link.connected() ? "ok" : "down";
    return { status: db === "ok" && broker === "ok" ? "ok" : "degraded", db, broker, version: ORCHARD_VERSION };
  }
}

export interface Services {
  auth: AuthService;
  users: UserService;
  audit: AuditService;
  fleet: FleetService;
  devices: DeviceService;
  enrollment: EnrollmentService;
  link: ServerLink;
  metrics: Metrics;
  system: SystemService;
  chatRelay: ChatRelay;
  conversations: ConversationService;
  apiKeys: ApiKeyService;
  telemetry: TelemetryStore;
  throughput: FleetThroughput;
  benchmarks: BenchmarkService;
  alerts: AlertService;
  uploads: UploadService;
  artifacts: ArtifactService;
  rollouts: RolloutService;
  comparisons: RuntimeComparisonService;
  /** Broker credential rotation (docs/protocol.md). */
  credentials: CredentialService;
}
