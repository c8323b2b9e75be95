-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "erased_at" TIMESTAMPTZ(3),
ADD COLUMN     "erasure_counts" JSONB,
ADD COLUMN     "erasure_requested_at" TIMESTAMPTZ(3);

-- Written by hand from here on.

-- Erasures requested and not finished: few at any time. Usage queries leave these connections out
-- (their history is half deleted) and the reconciler resumes them after a crash.
CREATE INDEX "connections_erasing_idx" ON "connections" ("id") WHERE erasure_requested_at IS NOT NULL AND erased_at IS NULL;
