-- CreateTable
CREATE TABLE "event_log" (
    "seq" BIGSERIAL NOT NULL,
    "user_id" TEXT NOT NULL,
    "event_id" TEXT NOT NULL,
    "event" JSONB NOT NULL,
    "logged_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "event_log_pkey" PRIMARY KEY ("seq")
);

-- CreateIndex
CREATE INDEX "event_log_user_seq_idx" ON "event_log"("user_id", "seq");

-- CreateIndex
CREATE INDEX "event_log_event_id_idx" ON "event_log"("event_id");

-- CreateIndex
CREATE INDEX "event_log_logged_at_idx" ON "event_log" USING BRIN ("logged_at");
