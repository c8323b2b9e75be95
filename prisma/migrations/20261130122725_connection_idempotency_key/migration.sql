-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "idempotency_key" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "connections_workspace_id_idempotency_key_key" ON "connections"("workspace_id", "idempotency_key");
