-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "grants" JSONB,
ADD COLUMN     "hidden" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "resume_hash" TEXT NOT NULL DEFAULT '',
ADD COLUMN     "token_expires_at" TIMESTAMP(3);
