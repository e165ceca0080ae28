async def main():
    # �动��任务
    await cp.start()
    print("✓ Control Plane started")
