-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "metadata" TEXT,
ADD COLUMN     "name" TEXT;
