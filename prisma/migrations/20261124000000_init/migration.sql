-- CreateEnum
CREATE TYPE "QuotaStatus" AS ENUM ('ACTIVE', 'EXCEEDED', 'SUSPENDED', 'EXPIRED');

-- CreateTable
CREATE TABLE "quota" (
    "id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "plan_id" TEXT,
    "status" "QuotaStatus" NOT NULL DEFAULT 'ACTIVE',
    "max_devices" INTEGER,
    "max_concurrent_devices" INTEGER,
    "max_cpu_cores_per_device" INTEGER,
    "max_memory_mb_per_device" INTEGER,
    "max_storage_gb_per_device" INTEGER,
    "total_cpu_cores" INTEGER,
    "total_memory_gb" DOUBLE PRECISION,
    "total_storage_gb" DOUBLE PRECISION,
    "max_bandwidth_mbps" DOUBLE PRECISION,
    "monthly_traffic_gb" DOUBLE PRECISION,
    "max_usage_hours_per_day" DOUBLE PRECISION,
    "max_usage_hours_per_month" DOUBLE PRECISION,
    "current_devices" INTEGER,
    "current_concurrent_devices" INTEGER,
    "used_cpu_cores" INTEGER,
    "used_memory_gb" DOUBLE PRECISION,
    "used_storage_gb" DOUBLE PRECISION,
    "current_bandwidth_mbps" DOUBLE PRECISION,
    "monthly_traffic_used_gb" DOUBLE PRECISION,
    "today_usage_hours" DOUBLE PRECISION,
    "monthly_usage_hours" DOUBLE PRECISION,
    "valid_from" TIMESTAMPTZ(3),
    "valid_until" TIMESTAMPTZ(3),
    "auto_renew" BOOLEAN NOT NULL DEFAULT false,
    "version" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "quota_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox_event" (
    "id" UUID NOT NULL,
    "routing_key" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,

    CONSTRAINT "outbox_event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "quota_user_id_key" ON "quota"("user_id");

-- CreateIndex
CREATE INDEX "outbox_event_unpublished_idx" ON "outbox_event"("published_at", "created_at");
