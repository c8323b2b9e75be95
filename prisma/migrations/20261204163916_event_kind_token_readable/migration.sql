-- AlterEnum
ALTER TYPE "EventKind" ADD VALUE 'token_readable';
