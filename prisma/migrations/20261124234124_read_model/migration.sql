-- CreateEnum
CREATE TYPE "DeviceStatus" AS ENUM ('CREATING', 'IDLE', 'ALLOCATED', 'RUNNING', 'STOPPED', 'PAUSED', 'ERROR', 'DELETED');

-- CreateEnum
CREATE TYPE "OrderStatus" AS ENUM ('PENDING', 'COMPLETED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "InstallationStatus" AS ENUM ('INSTALLING', 'INSTALLED', 'FAILED', 'UNINSTALLED');

-- AlterTable
ALTER TABLE "quota" DROP CONSTRAINT "quota_pkey",
ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "last_event_at" TIMESTAMPTZ(3),
ADD COLUMN     "last_event_id" TEXT,
ALTER COLUMN "id" SET DATA TYPE TEXT,
ADD CONSTRAINT "quota_pkey" PRIMARY KEY ("id");

-- CreateTable
CREATE TABLE "device" (
    "id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "status" "DeviceStatus" NOT NULL DEFAULT 'CREATING',
    "provider_type" TEXT,
    "cpu_cores" INTEGER,
    "memory_mb" INTEGER,
    "storage_gb" INTEGER,
    "status_reason" TEXT,
    "version" INTEGER NOT NULL DEFAULT 1,
    "last_event_at" TIMESTAMPTZ(3),
    "last_event_id" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "device_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "billing_order" (
    "id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "status" "OrderStatus" NOT NULL DEFAULT 'PENDING',
    "amount" DECIMAL(14,2),
    "device_id" TEXT,
    "plan_id" TEXT,
    "completed_at" TIMESTAMPTZ(3),
    "cancelled_at" TIMESTAMPTZ(3),
    "version" INTEGER NOT NULL DEFAULT 1,
    "last_event_at" TIMESTAMPTZ(3),
    "last_event_id" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "billing_order_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "app_installation" (
    "id" TEXT NOT NULL,
    "device_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "app_id" TEXT,
    "package_name" TEXT,
    "version_name" TEXT,
    "status" "InstallationStatus" NOT NULL DEFAULT 'INSTALLED',
    "installed_at" TIMESTAMPTZ(3),
    "uninstalled_at" TIMESTAMPTZ(3),
    "version" INTEGER NOT NULL DEFAULT 1,
    "last_event_at" TIMESTAMPTZ(3),
    "last_event_id" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "app_installation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "processed_event" (
    "event_id" TEXT NOT NULL,
    "routing_key" TEXT NOT NULL,
    "processed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "processed_event_pkey" PRIMARY KEY ("event_id")
);

-- CreateIndex
CREATE INDEX "device_user_page_idx" ON "device"("user_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "billing_order_user_page_idx" ON "billing_order"("user_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "app_installation_device_idx" ON "app_installation"("device_id", "created_at");

-- CreateIndex
CREATE INDEX "processed_event_processed_at_idx" ON "processed_event"("processed_at");
