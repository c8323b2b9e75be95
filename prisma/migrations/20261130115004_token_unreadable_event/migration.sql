-- AlterEnum
ALTER TYPE "EventKind" ADD VALUE 'token_unreadable';
