-- AlterEnum
ALTER TYPE "InstallationStatus" ADD VALUE 'UNINSTALLING';

-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "OrderStatus" ADD VALUE 'PAID';
ALTER TYPE "OrderStatus" ADD VALUE 'REFUNDED';
ALTER TYPE "OrderStatus" ADD VALUE 'FAILED';

-- AlterTable
ALTER TABLE "app_installation" ADD COLUMN     "error" TEXT;

-- AlterTable
ALTER TABLE "billing_order" ADD COLUMN     "status_reason" TEXT;

-- AlterTable
ALTER TABLE "device" ADD COLUMN     "failure_type" TEXT,
ADD COLUMN     "recovery_attempts" INTEGER,
ADD COLUMN     "recovery_strategy" TEXT;

-- CreateTable
CREATE TABLE "order_status_change" (
    "event_id" TEXT NOT NULL,
    "order_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "status" "OrderStatus" NOT NULL,
    "previous_status" "OrderStatus",
    "reason" TEXT,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "order_status_change_pkey" PRIMARY KEY ("event_id")
);

-- CreateIndex
CREATE INDEX "order_status_change_order_idx" ON "order_status_change"("order_id", "occurred_at");

-- CreateIndex
CREATE INDEX "app_installation_app_idx" ON "app_installation"("app_id", "user_id");

-- CreateIndex
CREATE INDEX "app_installation_package_idx" ON "app_installation"("package_name", "user_id");
