-- DropForeignKey
ALTER TABLE "usage_buckets" DROP CONSTRAINT "usage_buckets_connection_id_fkey";
