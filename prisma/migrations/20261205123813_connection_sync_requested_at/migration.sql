-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "sync_requested_at" TIMESTAMPTZ(3);
