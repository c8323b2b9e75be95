-- AlterEnum
ALTER TYPE "EventKind" ADD VALUE 'record_rejected';
