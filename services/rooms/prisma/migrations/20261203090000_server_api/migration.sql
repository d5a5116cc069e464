-- AlterTable
ALTER TABLE "rooms" ADD COLUMN     "empty_since" TIMESTAMP(3),
ADD COLUMN     "empty_timeout_s" INTEGER DEFAULT 0,
ADD COLUMN     "metadata" TEXT;

-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "grant_override" JSONB;

-- CreateTable
CREATE TABLE "tracks" (
    "id" TEXT NOT NULL,
    "socket_id" TEXT NOT NULL,
    "room_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "muted" BOOLEAN NOT NULL DEFAULT false,
    "published_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tracks_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "tracks_socket_id_idx" ON "tracks"("socket_id");

-- CreateIndex
CREATE INDEX "tracks_room_id_idx" ON "tracks"("room_id");

-- AddForeignKey
ALTER TABLE "tracks" ADD CONSTRAINT "tracks_socket_id_fkey" FOREIGN KEY ("socket_id") REFERENCES "sessions"("socket_id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Rooms an operator configured (a capacity of their own) were kept while empty: they still are.
UPDATE "rooms" SET "empty_timeout_s" = NULL WHERE "capacity" IS NOT NULL;
