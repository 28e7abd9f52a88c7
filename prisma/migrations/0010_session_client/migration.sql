-- Where a session was opened from, for the account page's session list: the client
-- address and User-Agent the sign-in came with (null for sessions opened before).
ALTER TABLE "Session" ADD COLUMN "ip" TEXT;
ALTER TABLE "Session" ADD COLUMN "userAgent" TEXT;
