-- One-click runtime comparisons (services/runtime-comparisons.ts): one device, several
-- models benchmarked one after another, then the device's original model restored.

-- CreateTable
CREATE TABLE "RuntimeComparison" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "deviceId" TEXT NOT NULL,
    "deviceName" TEXT NOT NULL,
    "steps" JSONB NOT NULL,
    "originalArtifactId" TEXT,
    "state" TEXT NOT NULL,
    "phase" TEXT NOT NULL,
    "stepIndex" INTEGER NOT NULL DEFAULT 0,
    "restoreRolloutId" TEXT,
    "error" TEXT,
    "cancelRequested" BOOLEAN NOT NULL DEFAULT false,
    "maxNewTokens" INTEGER NOT NULL,
    "prompts" JSONB NOT NULL,
    "createdById" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "RuntimeComparison_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "RuntimeComparison_createdAt_idx" ON "RuntimeComparison"("createdAt");

-- CreateIndex
CREATE INDEX "RuntimeComparison_state_idx" ON "RuntimeComparison"("state");
