-- CreateTable
CREATE TABLE "TelemetryMinute" (
    "deviceId" TEXT NOT NULL,
    "minute" TIMESTAMP(3) NOT NULL,
    "samples" INTEGER NOT NULL,
    "cpuMin" DOUBLE PRECISION,
    "cpuAvg" DOUBLE PRECISION,
    "cpuMax" DOUBLE PRECISION,
    "socTempMin" DOUBLE PRECISION,
    "socTempAvg" DOUBLE PRECISION,
    "socTempMax" DOUBLE PRECISION,
    "memTotalBytes" BIGINT NOT NULL,
    "memUsedMin" BIGINT NOT NULL,
    "memUsedAvg" BIGINT NOT NULL,
    "memUsedMax" BIGINT NOT NULL,
    "swapTotalBytes" BIGINT NOT NULL,
    "swapUsedMin" BIGINT NOT NULL,
    "swapUsedAvg" BIGINT NOT NULL,
    "swapUsedMax" BIGINT NOT NULL,
    "runnerRssMin" BIGINT,
    "runnerRssAvg" BIGINT,
    "runnerRssMax" BIGINT,
    "tokensPerSecondAvg" DOUBLE PRECISION,
    "tokensPerSecondMax" DOUBLE PRECISION,
    "load1Avg" DOUBLE PRECISION NOT NULL,
    "load5Avg" DOUBLE PRECISION NOT NULL,
    "load15Avg" DOUBLE PRECISION NOT NULL,
    "load1Max" DOUBLE PRECISION NOT NULL,
    "diskTotalBytes" BIGINT,
    "diskFreeLast" BIGINT,
    "diskFreeMin" BIGINT,
    "throttledSamples" INTEGER,
    "underVoltageSamples" INTEGER,

    CONSTRAINT "TelemetryMinute_pkey" PRIMARY KEY ("deviceId","minute")
);

-- CreateTable
CREATE TABLE "TelemetryRollupState" (
    "id" INTEGER NOT NULL,
    "lastSampleId" BIGINT NOT NULL,

    CONSTRAINT "TelemetryRollupState_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "TelemetryMinute_minute_idx" ON "TelemetryMinute"("minute");

-- CreateIndex
CREATE INDEX "TelemetrySample_ts_idx" ON "TelemetrySample"("ts");

-- AddForeignKey
ALTER TABLE "TelemetryMinute" ADD CONSTRAINT "TelemetryMinute_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

