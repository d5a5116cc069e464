-- CreateTable
CREATE TABLE "room_events" (
    "id" UUID NOT NULL,
    "room_id" TEXT NOT NULL,
    "seq" BIGINT NOT NULL,
    "type" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMP(3),

    CONSTRAINT "room_events_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "room_sequences" (
    "room_id" TEXT NOT NULL,
    "seq" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "room_sequences_pkey" PRIMARY KEY ("room_id")
);

-- CreateIndex
CREATE INDEX "room_events_published_at_created_at_idx" ON "room_events"("published_at", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "room_events_room_id_seq_key" ON "room_events"("room_id", "seq");
