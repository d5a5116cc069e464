-- DropIndex
DROP INDEX "sessions_gateway_id_idx";

-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "attached_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN     "connection_id" TEXT NOT NULL,
ADD COLUMN     "cpu_at" TIMESTAMP(3),
ADD COLUMN     "cpu_used" INTEGER;

-- CreateTable
CREATE TABLE "gateways" (
    "id" TEXT NOT NULL,
    "started_at" TIMESTAMP(3) NOT NULL,
    "last_seen" TIMESTAMP(3) NOT NULL,
    "sockets" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "gateways_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "sessions_gateway_id_state_idx" ON "sessions"("gateway_id", "state");

-- CreateIndex
CREATE INDEX "sessions_state_disconnected_at_idx" ON "sessions"("state", "disconnected_at");
