-- Credential rotation: a device's next broker password (sha256), valid beside the current one
-- until the device confirms it has stored it, and when its password last changed.
ALTER TABLE "Device" ADD COLUMN     "mqttPendingPasswordHash" TEXT;
ALTER TABLE "Device" ADD COLUMN     "credentialsRotatedAt" TIMESTAMP(3);
