-- CreateEnum
CREATE TYPE "session_state" AS ENUM ('ACTIVE', 'DISCONNECTED');

-- CreateTable
CREATE TABLE "rooms" (
    "id" TEXT NOT NULL,
    "capacity" INTEGER,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rooms_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "sessions" (
    "socket_id" TEXT NOT NULL,
    "room_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "platform" TEXT NOT NULL,
    "device_name" TEXT,
    "network_type" TEXT,
    "version" TEXT,
    "app_version" TEXT,
    "orientation" INTEGER,
    "camera" TEXT,
    "ip" TEXT,
    "gateway_id" TEXT NOT NULL,
    "state" "session_state" NOT NULL DEFAULT 'ACTIVE',
    "joined_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_seen" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "disconnected_at" TIMESTAMP(3),

    CONSTRAINT "sessions_pkey" PRIMARY KEY ("socket_id")
);

-- CreateIndex
CREATE INDEX "sessions_room_id_state_idx" ON "sessions"("room_id", "state");

-- CreateIndex
CREATE INDEX "sessions_gateway_id_idx" ON "sessions"("gateway_id");

-- AddForeignKey
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_room_id_fkey" FOREIGN KEY ("room_id") REFERENCES "rooms"("id") ON DELETE CASCADE ON UPDATE CASCADE;
