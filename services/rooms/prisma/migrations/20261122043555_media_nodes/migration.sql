-- AlterTable
ALTER TABLE "rooms" ADD COLUMN     "media_node_id" TEXT;

-- CreateTable
CREATE TABLE "media_nodes" (
    "id" TEXT NOT NULL,
    "started_at" TIMESTAMP(3) NOT NULL,
    "last_seen" TIMESTAMP(3) NOT NULL,
    "load" INTEGER NOT NULL DEFAULT 0,
    "capacity" INTEGER NOT NULL DEFAULT 1,
    "accepting" BOOLEAN NOT NULL DEFAULT true,

    CONSTRAINT "media_nodes_pkey" PRIMARY KEY ("id")
);
