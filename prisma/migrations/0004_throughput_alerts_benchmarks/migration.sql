-- AlterTable
ALTER TABLE "TelemetrySample" ADD COLUMN     "activeGenerations" INTEGER,
ADD COLUMN     "boardPowerW" DOUBLE PRECISION,
ADD COLUMN     "cpuFreqHz" BIGINT,
ADD COLUMN     "generatedTokens" INTEGER,
ADD COLUMN     "prefillTokensPerSecond" DOUBLE PRECISION;

-- AlterTable
ALTER TABLE "TelemetryMinute" ADD COLUMN     "activeGenerationsMax" INTEGER,
ADD COLUMN     "boardPowerAvg" DOUBLE PRECISION,
ADD COLUMN     "boardPowerMax" DOUBLE PRECISION,
ADD COLUMN     "cpuFreqAvg" BIGINT,
ADD COLUMN     "cpuFreqMin" BIGINT,
ADD COLUMN     "generatedTokens" BIGINT,
ADD COLUMN     "prefillTokensPerSecondAvg" DOUBLE PRECISION;

-- CreateTable
CREATE TABLE "Alert" (
    "id" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "startedAt" TIMESTAMP(3) NOT NULL,
    "clearedAt" TIMESTAMP(3),

    CONSTRAINT "Alert_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BenchmarkRun" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "maxNewTokens" INTEGER NOT NULL,
    "prompts" JSONB NOT NULL,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "BenchmarkRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BenchmarkDeviceRun" (
    "runId" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "deviceName" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "completed" INTEGER NOT NULL DEFAULT 0,
    "total" INTEGER NOT NULL,
    "error" TEXT,
    "result" JSONB,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "BenchmarkDeviceRun_pkey" PRIMARY KEY ("runId","deviceId")
);

-- CreateIndex
CREATE INDEX "Alert_clearedAt_idx" ON "Alert"("clearedAt");

-- CreateIndex
CREATE INDEX "Alert_deviceId_kind_clearedAt_idx" ON "Alert"("deviceId", "kind", "clearedAt");

-- CreateIndex
CREATE INDEX "Alert_startedAt_idx" ON "Alert"("startedAt");

-- CreateIndex
CREATE INDEX "BenchmarkRun_createdAt_idx" ON "BenchmarkRun"("createdAt");

-- CreateIndex
CREATE INDEX "BenchmarkDeviceRun_deviceId_idx" ON "BenchmarkDeviceRun"("deviceId");

-- AddForeignKey
ALTER TABLE "Alert" ADD CONSTRAINT "Alert_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "BenchmarkDeviceRun" ADD CONSTRAINT "BenchmarkDeviceRun_runId_fkey" FOREIGN KEY ("runId") REFERENCES "BenchmarkRun"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "BenchmarkDeviceRun" ADD CONSTRAINT "BenchmarkDeviceRun_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

